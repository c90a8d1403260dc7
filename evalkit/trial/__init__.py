"""The trial's design, validated once at the edge.

Takes the design TOML and gives typed, frozen objects: the trial, groups, courses and booking
windows (`design`), the pre-specified analysis plan (`analysis_plan`), and the small validators
they share. Every later stage reads the design through these objects and nothing else.
"""
