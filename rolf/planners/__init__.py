from rolf.planners.cem import CEMPlanner, CEMConfig
from rolf.planners.schedules import LinearDecay

__all__ = ["CEMPlanner", "CEMConfig", "LinearDecay"]
