"""The peer servers' own code (KServe, MLServer, BentoML), run by each peer env's interpreter.

Never imported by the harness (``bench/peers.py`` starts them): their frameworks are installed
only in those envs, not in the project's.
"""
