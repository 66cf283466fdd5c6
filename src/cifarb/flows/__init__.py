"""cifarb.flows"""
