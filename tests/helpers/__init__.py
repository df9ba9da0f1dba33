"""What the tests share: fakes, a scripted LLM server, sessions, store and fleet helpers."""
