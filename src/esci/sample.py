"""Deterministic generator of an ESCI-shaped sample (the project's embedded default data).

In: a target directory, a number of queries, a seed and a label-noise fraction.
Out: the public release's three files (`shopping_queries_dataset_{examples,products}.parquet`, `..._sources.csv`)
plus `sample_label_noise.csv` (example_id, true_label, given_label) listing the training labels flipped on purpose.

Catalog: locales us/es/jp (Japanese in Japanese script), families of two substitutable product types and one
accessory type; titles, bullets and descriptions (some with HTML), brand and color with realistic gaps.
Labels follow the query-product relation: E = the queried type matching every attribute the query names,
S = the sibling type or the queried type with another brand/color, C = the family's accessory, I = another family.
Proportions come out near the real E 65% / S 22% / C 3% / I 10%.
"""
from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import pandas as pd

from .data import EXAMPLES, PRODUCTS, SOURCES
from .io import write_csv, write_parquet

NOISE_FILE = "sample_label_noise.csv"

# family: (type A, type B, accessory) per locale
FAMILIES = {
    "us": [("over-ear headphones", "wireless earbuds", "headphone case"),
           ("running shoes", "trail shoes", "shoe insoles"),
           ("coffee maker", "espresso machine", "coffee filters"),
           ("phone case", "wallet phone case", "screen protector"),
           ("backpack", "laptop bag", "luggage tag"),
           ("desk lamp", "floor lamp", "led bulb"),
           ("water bottle", "travel mug", "bottle brush"),
           ("yoga mat", "exercise mat", "yoga strap"),
           ("chef knife", "santoku knife", "knife sharpener"),
           ("mechanical keyboard", "wireless keyboard", "wrist rest"),
           ("smart watch", "fitness tracker", "watch band"),
           ("frying pan", "wok", "pan lid")],
    "es": [("auriculares de diadema", "auriculares inalámbricos", "funda para auriculares"),
           ("zapatillas de running", "zapatillas de trail", "plantillas"),
           ("cafetera", "máquina de espresso", "filtros de café"),
           ("funda de móvil", "funda cartera para móvil", "protector de pantalla"),
           ("mochila", "maletín para portátil", "etiqueta de equipaje"),
           ("lámpara de escritorio", "lámpara de pie", "bombilla led"),
           ("botella de agua", "taza de viaje", "cepillo para botellas"),
           ("esterilla de yoga", "esterilla de ejercicio", "correa de yoga"),
           ("cuchillo de chef", "cuchillo santoku", "afilador de cuchillos"),
           ("teclado mecánico", "teclado inalámbrico", "reposamuñecas"),
           ("reloj inteligente", "pulsera de actividad", "correa de reloj"),
           ("sartén", "wok", "tapa de sartén")],
    "jp": [("オーバーイヤーヘッドホン", "ワイヤレスイヤホン", "ヘッドホンケース"),
           ("ランニングシューズ", "トレイルシューズ", "インソール"),
           ("コーヒーメーカー", "エスプレッソマシン", "コーヒーフィルター"),
           ("スマホケース", "手帳型スマホケース", "画面保護フィルム"),
           ("リュック", "ノートパソコンバッグ", "ネームタグ"),
           ("デスクライト", "フロアライト", "LED電球"),
           ("水筒", "タンブラー", "ボトルブラシ"),
           ("ヨガマット", "トレーニングマット", "ヨガストラップ"),
           ("牛刀", "三徳包丁", "包丁研ぎ器"),
           ("メカニカルキーボード", "ワイヤレスキーボード", "リストレスト"),
           ("スマートウォッチ", "活動量計", "交換バンド"),
           ("フライパン", "中華鍋", "フライパン蓋")],
}
COLORS = {"us": ["black", "white", "red", "blue", "green", "gray", "pink", "silver"],
          "es": ["negro", "blanco", "rojo", "azul", "verde", "gris", "rosa", "plateado"],
          "jp": ["ブラック", "ホワイト", "レッド", "ブルー", "グリーン", "グレー", "ピンク", "シルバー"]}
BRANDS = {"us": ["Norvik", "Altura", "Kestrel", "Lumora", "Vantix", "Brightwell"],
          "es": ["Norvik", "Altura", "Tessaly", "Zanto", "Mirelle", "Vantix"],
          "jp": ["アルトラ", "ケストレル", "山田工業", "Norvik", "ルモラ", "匠屋"]}
ADJECTIVES = {"us": ["premium", "lightweight", "durable", "compact", "professional", "classic"],
              "es": ["premium", "ligero", "resistente", "compacto", "profesional", "clásico"],
              "jp": ["高品質", "軽量", "丈夫な", "コンパクト", "プロ仕様", "定番"]}
BULLETS = {"us": ["Easy to clean", "1 year warranty", "Fits most models", "Made from recycled materials",
                  "Ships in eco-friendly packaging", "Ideal gift for friends & family"],
           "es": ["Fácil de limpiar", "Garantía de 1 año", "Compatible con la mayoría de modelos",
                  "Materiales reciclados", "Embalaje ecológico", "Ideal para regalar"],
           "jp": ["お手入れ簡単", "1年保証", "ほとんどの機種に対応", "再生素材を使用", "環境に優しい梱包",
                  "プレゼントに最適"]}
DESCRIPTIONS = {"us": "The {brand} {type} is {adj} and comes in {color}.",
                "es": "El {type} de {brand} es {adj} y viene en color {color}.",
                "jp": "{brand}の{type}は{adj}で、カラーは{color}です。"}
QUALIFIERS = {"us": ["", "", "cheap ", "best ", "for men ", "for women "],
              "es": ["", "", "barato ", "mejor ", "para hombre ", "para mujer "],
              "jp": ["", "", "安い ", "おすすめ ", "メンズ ", "レディース "]}
LOCALE_SHARE = {"us": 0.5, "es": 0.25, "jp": 0.25}
PRODUCTS_PER_TYPE = 30
PRODUCTS_PER_ACCESSORY = 10
SOURCE_NAMES = ["other", "negations", "parse_pattern", "behavioral"]


def _asin(rng: np.random.Generator, used: set) -> str:
    alphabet = np.array(list(string.ascii_uppercase + string.digits))
    while True:
        pid = "B0" + "".join(rng.choice(alphabet, 8))
        if pid not in used:
            used.add(pid)
            return pid


def _catalog(rng: np.random.Generator) -> pd.DataFrame:
    rows, used = [], set()
    for loc in ("us", "es", "jp"):
        for fam, types in enumerate(FAMILIES[loc]):
            for kind, type_name in enumerate(types):
                n = PRODUCTS_PER_ACCESSORY if kind == 2 else PRODUCTS_PER_TYPE
                for _ in range(n):
                    brand = str(rng.choice(BRANDS[loc]))
                    color = str(rng.choice(COLORS[loc]))
                    adj = str(rng.choice(ADJECTIVES[loc]))
                    model = f"{rng.choice(list('XKRTV'))}-{int(rng.integers(10, 99)) * 10}"
                    sep = " " if loc == "jp" else (" - " if loc == "us" else ", ")
                    title = f"{brand} {adj} {type_name} {model}{sep}{color}" if loc == "us" else \
                        f"{brand} {type_name} {adj} {model}{sep}{color}"
                    bullets = "\n".join(rng.choice(BULLETS[loc], int(rng.integers(2, 5)), replace=False))
                    desc = DESCRIPTIONS[loc].format(brand=brand, type=type_name, adj=adj, color=color)
                    if rng.random() < 0.4:
                        desc = f"<p>{desc}</p><br><b>{rng.choice(BULLETS[loc])}</b> &amp; {model}"
                    # ASINs recur across locales in the real data; join keys must be (locale, id)
                    pid = rows[int(rng.integers(len(rows)))]["product_id"] \
                        if loc == "es" and rows and rng.random() < 0.05 else _asin(rng, used)
                    rows.append(dict(
                        product_id=pid, product_title=title,
                        product_description=desc if rng.random() > 0.4 else None,
                        product_bullet_point=bullets if rng.random() > 0.15 else None,
                        product_brand=brand if rng.random() > 0.1 else None,
                        product_color=color if rng.random() > 0.35 else None,
                        product_locale=loc, _family=fam, _kind=kind, _brand=brand, _color=color))
    df = pd.DataFrame(rows)
    return df.drop_duplicates(["product_locale", "product_id"]).reset_index(drop=True)


def _query(rng, loc, type_name, brand, color, constraint) -> str:
    q = str(rng.choice(QUALIFIERS[loc]))
    if constraint == "brand":
        return f"{q}{brand} {type_name}" if loc != "es" else f"{q}{type_name} {brand}"
    if constraint == "color":
        return f"{q}{type_name} {color}"
    return f"{q}{type_name}"


def generate(n_queries: int = 300, seed: int = 0, noise: float = 0.05) -> tuple[pd.DataFrame, ...]:
    """Return (examples, products, sources, noise) frames of the sample."""
    rng = np.random.default_rng(seed)
    cat = _catalog(rng)
    by_loc = {loc: cat[cat.product_locale.eq(loc)] for loc in LOCALE_SHARE}
    locs = rng.choice(list(LOCALE_SHARE), n_queries, p=list(LOCALE_SHARE.values()))
    examples, seen = [], {}
    for loc in locs:
        c = by_loc[loc]
        while True:
            fam, kind = int(rng.integers(len(FAMILIES[loc]))), int(rng.integers(2))
            constraint = str(rng.choice(["none", "brand", "color"], p=[0.35, 0.3, 0.35]))
            brand, color = str(rng.choice(BRANDS[loc])), str(rng.choice(COLORS[loc]))
            text = _query(rng, loc, FAMILIES[loc][fam][kind], brand, color, constraint)
            if (loc, text) not in seen:
                break
        qid = seen[(loc, text)] = len(seen)
        same = c._family.eq(fam) & c._kind.eq(kind)
        match = same & (c._brand.eq(brand) if constraint == "brand" else
                        c._color.eq(color) if constraint == "color" else True)
        pools = {"E": c[match], "S": c[(c._family.eq(fam) & c._kind.eq(1 - kind)) | (same & ~match)],
                 "C": c[c._family.eq(fam) & c._kind.eq(2)], "I": c[c._family.ne(fam)]}
        n_e = min(int(rng.integers(4, 27)), len(pools["E"]))
        counts = {"E": n_e, "S": int(rng.poisson(n_e * 0.34)), "C": int(rng.poisson(n_e * 0.05)),
                  "I": max(1, int(rng.poisson(n_e * 0.12)))}
        counts["S"] += max(0, 5 - sum(counts.values()))
        small, split = int(rng.random() < 0.5), "train" if rng.random() < 0.7 else "test"
        for label, k in counts.items():
            pool = pools[label]
            for i in rng.choice(len(pool), min(k, len(pool)), replace=False):
                examples.append(dict(query=text, query_id=qid, product_id=pool.product_id.iat[i],
                                     product_locale=loc, esci_label=label, small_version=small,
                                     large_version=1, split=split))
    ex = pd.DataFrame(examples)
    ex.insert(0, "example_id", np.arange(len(ex), dtype="int64"))
    for col in ("query_id", "small_version", "large_version"):
        ex[col] = ex[col].astype("int64")
    # a recorded fraction of training labels flipped, so confident learning can be scored
    train_idx = np.flatnonzero(ex.split.eq("train"))
    flip = np.sort(rng.choice(train_idx, int(round(noise * len(train_idx))), replace=False))
    true = ex.esci_label.to_numpy()[flip]
    given = np.array([rng.choice([l for l in "ESCI" if l != t], p=None) for t in true])
    ex.loc[flip, "esci_label"] = given
    noise_df = pd.DataFrame({"example_id": ex.example_id.to_numpy()[flip], "true_label": true,
                             "given_label": given})
    products = cat.drop(columns=[c for c in cat.columns if c.startswith("_")])
    sources = pd.DataFrame({"query_id": np.arange(len(seen), dtype="int64"),
                            "source": rng.choice(SOURCE_NAMES, len(seen))})
    return ex, products, sources, noise_df


def write_sample(data_dir: str | Path, n_queries: int = 300, seed: int = 0, noise: float = 0.05) -> dict:
    """Write the sample files into data_dir (products first, so a crash never leaves examples alone)."""
    data_dir = Path(data_dir)
    ex, products, sources, noise_df = generate(n_queries, seed, noise)
    write_parquet(products, data_dir / PRODUCTS)
    write_csv(sources, data_dir / SOURCES)
    write_csv(noise_df, data_dir / NOISE_FILE)
    write_parquet(ex, data_dir / EXAMPLES)
    return dict(examples=len(ex), products=len(products), queries=int(ex.query_id.nunique()),
                flipped=len(noise_df), labels=ex.esci_label.value_counts(normalize=True).round(3).to_dict())
