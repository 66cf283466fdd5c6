"""cifarb.augment"""
