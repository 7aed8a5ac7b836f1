"""Policy-gradient agents (MLE, SeqGAN REINFORCE, BGAN, actor-critic) and the benchmark runner."""
