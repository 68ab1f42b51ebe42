#!/usr/bin/env python3
"""Rebuild crates/pdf/assets/NotoSansSC-medsign.otf — the CJK font medsign embeds (a fresh machine has none).

Subset of Noto Sans CJK SC Regular (SIL OFL 1.1, see crates/pdf/assets/OFL.txt): every GB2312 character,
ASCII, and the symbols and name characters hospital documents use. Hospitals that need rarer characters set
`pdf.font_file` to a full font instead.

Usage: apt-get download fonts-noto-cjk && dpkg-deb -x fonts-noto-cjk_*.deb nf
       pip install fonttools && python3 scripts/make-font-subset.py nf/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc
"""
import subprocess
import sys

chars = set()
for b1 in range(0xA1, 0xF8):
    for b2 in range(0xA1, 0xFF):
        try:
            chars.add(bytes([b1, b2]).decode("gb2312"))
        except UnicodeDecodeError:
            pass
chars |= {chr(c) for c in range(0x20, 0x7F)}
chars |= set("¥℃µμ±×÷↑↓≤≥①②③④⑤⑥⑦⑧⑨⑩·—–‘’“”…、。，；：？！（）【】《》〈〉「」『』￥％＋－＝／Ⅰ™®©°′″§№★☆■□▲△●○◆◇√✓✔•─│┌┐└┘├┤┬┴┼")
chars |= set("喆堃淼犇垚鑫焱昇珺玥琰钰晔彧昱珏瑄赟祎祐禛禹祺镕铖锟婕嫣妍婧媛汐沅洺浛炜煜燚烨熠曌晟暐曦旻旸")
with open("/tmp/medsign-font-chars.txt", "w", encoding="utf-8") as f:
    f.write("".join(sorted(chars)))
subprocess.run(
    ["pyftsubset", sys.argv[1], "--font-number=2", "--text-file=/tmp/medsign-font-chars.txt",
     "--output-file=crates/pdf/assets/NotoSansSC-medsign.otf", "--layout-features=", "--no-hinting",
     "--name-IDs=*", "--name-languages=*"],
    check=True,
)
print(len(chars), "characters")
