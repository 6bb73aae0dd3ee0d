"""Modelship model pipeline: train, evaluate and export TensorFlow models for serving.

``python -m model --help`` lists the commands. The package never imports ``service``.
"""
