"""The live worker: the Faust app, the pipeline of batches, state and model tables, alert
delivery, the Redis index and risk view, metrics."""
