"""The shipped national example, and the demo that runs every stage on it.

Gives the 109 real PDUs with synthetic staff (`roster`), a synthetic learning-platform export
(`bookings`), synthetic outcomes (`outcomes`) and the end-to-end `demo`.
"""
