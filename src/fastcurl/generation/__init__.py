"""Getting a model to generate: loading it (a Hub id, a directory or a GGUF file), its dtype, the vLLM server."""
