"""Verification codes and digits from outside MNIST.

generate (seeded codes with true digit boxes, cached), crops (true-box crops), segment (cutting a code
into digits and reading it), fonts (printed and unseen-style digits), training (the cached digit sets
the `best` recipe mixes in), imagefile (reading an image file in bounded time and memory), grayscale
(any image -> float gray), normalize (-> MNIST style) and errors (NoDigit, UnreadableImage).
"""
