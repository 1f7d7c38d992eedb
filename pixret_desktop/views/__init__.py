"""Views: layout and drawing only; they never call the engine."""
