"""Draw docs/img/archs.png: the layer lists of LV-BERT-small, BERT and a sandwich, one cell per slot.

    python docs/figures.py
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.patches import Patch, Rectangle  # noqa: E402

from lvbert.arch import TYPE_NAMES, parse_arch  # noqa: E402

COLOURS = {"C": "#2a9d8f", "A": "#e76f51", "F": "#264653"}
ROWS = [("LV-BERT-small", "lv-bert-small"), ("BERT / ELECTRA", "bert"), ("sandwich (k=3)", "sandwich")]

fig, ax = plt.subplots(figsize=(10, 2.3))
for i, (label, name) in enumerate(ROWS):
    y = len(ROWS) - 1 - i
    for j, t in enumerate(parse_arch(name)):
        ax.add_patch(Rectangle((j, y), 1, 0.9, facecolor=COLOURS[t], edgecolor="white"))
        ax.text(j + 0.5, y + 0.45, t, ha="center", va="center", color="white", fontsize=8)
ax.set_xlim(0, 24)
ax.set_ylim(0, len(ROWS))
ax.set_yticks([len(ROWS) - 1 - i + 0.45 for i in range(len(ROWS))], [r[0] for r in ROWS])
ax.set_xticks([j + 0.5 for j in range(24)], [str(j) for j in range(24)], fontsize=7)
ax.set_xlabel("slot (input at the left)")
ax.tick_params(length=0)
for s in ax.spines.values():
    s.set_visible(False)
ax.legend(handles=[Patch(facecolor=c, label=f"{t}: {TYPE_NAMES[t]}") for t, c in COLOURS.items()],
          loc="upper center", bbox_to_anchor=(0.5, -0.3), ncol=3, frameon=False)
out = Path(__file__).parent / "img" / "archs.png"
fig.savefig(out, dpi=110, bbox_inches="tight")
print(out)
