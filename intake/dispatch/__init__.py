"""What dispatch systems and the dispatch board use: the queue, the stream, exports."""
