"""``agent-reinforce``: Agent-REINFORCE (method.md §5), an LLM agent driving a LangGraph loop.

- :mod:`.graph`: the method (:class:`AgentReinforce`) and the agent's StateGraph;
- :mod:`.prompts`: its prompts (``prompts/agent/``) and the pilot data it is shown;
- :mod:`.pool_profile`: the stored ``langtts profile`` of the run's pool it reads (initialise prompt, pretest);
- :mod:`.schemas`: the JSON schemas of its answers; :mod:`.parsing`: the checks that turn an answer into a
  choice, feedback or a graph; :mod:`.update`: an answer's probabilities turned into logits;
- :mod:`.space`: p_θ over a fixed worker multiset.
"""

from langtts.search.agent_reinforce.graph import AgentReinforce, AgentState
from langtts.search.agent_reinforce.parsing import AgentOutputError
from langtts.search.agent_reinforce.prompts import PilotData, PilotEntry
from langtts.search.agent_reinforce.space import draw, explain, initial_distribution

__all__ = [
    "AgentOutputError",
    "AgentReinforce",
    "AgentState",
    "PilotData",
    "PilotEntry",
    "draw",
    "explain",
    "initial_distribution",
]
