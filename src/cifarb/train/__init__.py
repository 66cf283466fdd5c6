"""cifarb.train"""
