"""cifarb.eval"""
