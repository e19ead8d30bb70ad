"""Redis: the embedded server, job enqueue, and the shared pacing limiter."""
