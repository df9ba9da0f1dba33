"""What each turn and session costs: prices per model (shipped file, user files, genai-prices)
and the cost of LiveKit's usage records. Never imports livekit."""
