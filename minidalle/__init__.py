"""minidalle: our JAX/Flax DALL-E Mini/Mega pipeline (see shared/reference/dalle-mini-architecture.md)."""
