"""One module per tab, in the order the tabs appear. Each has TITLE and build()."""

from apps import attack, classify, digit_diffusion, digit_gan, digits, fabric, horse2zebra, neurons, segment, text

TABS = [neurons, digits, classify, segment, fabric, digit_gan, digit_diffusion, horse2zebra, attack, text]
