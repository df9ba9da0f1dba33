"""Settings from flags, environment and .env, one job a module; none of them imports livekit,
so every check runs before the (slow) agent stack loads.

- ``defaults``: the default models and the output formats (what the help shows);
- ``options``: the option objects the command line fills (no validation);
- ``urls``: URL checks and masking of the credentials a URL may carry;
- ``envfile``: reading ``.env`` (or ``--env-file``) into the environment;
- ``settings``: :class:`~lkmetrics.config.settings.AgentSettings`, what an agent runs with,
  handed to job processes as a file that ``LKMETRICS_SETTINGS`` names;
- ``credentials``: the LiveKit server and credentials an agent's stages need;
- ``prepare``: the command line validated into settings (model strings, ``--agent``).

Import from the module that does the job: this package imports none of them, so ``--help``
loads only ``defaults``.
"""
