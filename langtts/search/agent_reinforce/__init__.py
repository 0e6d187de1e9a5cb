"""``agent-reinforce``: Agent-REINFORCE (method.md §5), an LLM agent driving a LangGraph loop.

- :mod:`.graph`: the method (:class:`AgentReinforce`) and the agent's StateGraph;
- :mod:`.prompts`: its prompts (``prompts/agent/``) and the pilot data it is shown;
- :mod:`.pool_profile`: the stored ``langtts profile`` of the run's pool it reads (every prompt's shared system
  message, pretest);
- :mod:`.claims`: the figures its feedback reads, the rule that checks the feedback's claims against them, and
  the similarity that finds feedback repeating an earlier round's;
- :mod:`.schemas`: the JSON schemas of its answers; :mod:`.parsing`: the checks that turn an answer into a
  choice, feedback or a graph; :mod:`.update`: an answer's probabilities turned into logits;
- :mod:`.space`: p_θ over a worker multiset (its sink options: the paper's fixed decider in a ``paper_faithful``
  space, else every decider or vote the budget affords beside the multiset);
- :mod:`.revision`: outside a ``paper_faithful`` space, the rule under which the agent's update may revise the
  model mix (measured per-model accuracy), and p_θ rebuilt for the new mix.
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
