"""langtts: compute-optimal multi-LLM collaboration graphs for LangChain/LangGraph."""

__version__ = "0.1.0"
