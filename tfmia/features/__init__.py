"""Per-sample signals read off a Keras model: outputs, intermediate activations,
gradient statistics and distances to the decision boundary.

Everything here batches through the model; nothing materialises a whole large
dataset's activations or gradients at once.
"""
