"""gRPC transport: TensorFlow Serving's PredictionService and ModelService, health and reflection."""
