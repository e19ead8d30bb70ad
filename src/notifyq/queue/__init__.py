"""Redis: the connection, the embedded server, job enqueue, queue depth, the callback inbox."""
