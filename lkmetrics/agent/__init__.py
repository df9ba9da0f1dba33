"""Running the agent: ``server`` (AgentServer, Agent and AgentSession from settings),
``capture`` (the only LiveKit subscriber), ``instrument`` (capture for LiveKit's own CLI), ``relay``
(job processes -> the CLI process), ``output`` (a run's writers) and ``run`` (delegation to
LiveKit's CLI). Only ``server`` and ``capture`` import livekit at module level."""
