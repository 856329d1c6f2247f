"""The service layer: what the UI calls, over storage, the engine and the client."""
