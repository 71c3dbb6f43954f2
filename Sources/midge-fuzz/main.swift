// Replaced by the fuzz entry points.
print("midge-fuzz")
