"""One module per tab, in the order the tabs appear. Each has TITLE and build()."""

from apps import classify, digits, neurons

TABS = [neurons, digits, classify]
