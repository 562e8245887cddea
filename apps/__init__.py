"""One module per tab, in the order the tabs appear. Each has TITLE and build()."""

from apps import digits, neurons

TABS = [neurons, digits]
