"""What tools read from the Retab API beyond one request: the evidence a view is made from, read
concurrently where it can be, each optional part recorded as a warning when it cannot be read.

Views (views/) declare what they take and shape it; nothing here decides what a model reads.
"""
