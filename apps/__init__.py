"""One module per tab, in the order the tabs appear. Each has TITLE and build()."""

from apps import attack, classify, digit_gan, digits, neurons, text

TABS = [neurons, digits, classify, digit_gan, attack, text]
