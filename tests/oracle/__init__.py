"""The slow, obviously-right Python pipeline that the compiled core is checked against.

Never shipped: ``tests/reference.py`` reads and rebuilds connections packet by packet, and
``label``/``http``/``machine`` here label them as the pure-Python kaflow did.
"""
