"""Deterministic generator of ESCI-shaped data: the project's embedded sample and a release-sized stand-in.

In: a target directory, a number of queries, a seed and a label-noise fraction.
Out: the public release's three files (`shopping_queries_dataset_{examples,products}.parquet`, `..._sources.csv`)
with its exact schema, plus `sample_label_noise.csv` (example_id, true_label, given_label) listing the training
labels flipped on purpose. Products are written first and every file appears atomically (temporary name in the same
folder, then `os.replace`), so a crash never leaves a half-written file or examples without their products.
`python -m esci.sample --queries N --out DIR [--seed S] [--noise F]` does the same from the command line.

Catalog: locales us/es/jp (shares 0.5/0.25/0.25, Japanese in Japanese script), families of two substitutable
product types and one accessory type; about 0.7 products per judgement at release size (about 0.5 in the small
sample, whose products recur across queries as before); ids "B0" + 8 characters, unique within a
locale, about 5% of es ids reused from us products (the join key is (locale, product_id)). Brands grow with the
catalog (a handful at 300 queries, thousands at release size) with Zipf-like popularity per family. Titles hold
type, brand and color (about 130 characters in us); bullets (several, joined by "\\n") and descriptions (some in
HTML with entities) are drawn from per-locale sentence banks that mention brand, type and color in places, with
lognormal-like lengths and the release's gaps (description 45%, bullets 15%, brand 5%, color 35% missing).
Queries name a type and optionally a brand or a color, plus qualifiers and modifiers; every text is unique.
Labels follow the query-product relation: E = the queried type matching every attribute the query names,
S = the sibling type or the queried type with another brand/color, C = the family's accessory, I = another family.
Proportions come out near the real E 65% / S 22% / C 3% / I 10%.

Everything is vectorized (numpy draws, strings assembled from word-bank pieces by pyarrow) and streamed to parquet
in fixed-size chunks, each with its own random stream, so the same (n_queries, seed, noise) gives byte-identical
files: 300 queries take well under a second, 130,000 queries (2.6M judgements, 1.8M products, 0.5 GB of parquet)
about half a minute on 2 cores with a peak RSS of about 1.2 GiB.
"""
from __future__ import annotations

import argparse
import html
import re
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from .data import EXAMPLES, PRODUCTS, SOURCES
from .io import atomic_path

NOISE_FILE = "sample_label_noise.csv"
LOCALES = ("us", "es", "jp")
LOCALE_SHARE = {"us": 0.5, "es": 0.25, "jp": 0.25}
LABEL_CODES = ("E", "S", "C", "I")
SOURCE_NAMES = ["other", "negations", "parse_pattern", "behavioral"]

# family: (type A, type B, accessory) per locale; the same families in every locale, in the same order
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
           ("frying pan", "wok", "pan lid"),
           ("electric toothbrush", "manual toothbrush", "toothbrush heads"),
           ("office chair", "gaming chair", "seat cushion"),
           ("bluetooth speaker", "soundbar", "speaker stand"),
           ("air fryer", "toaster oven", "air fryer liners"),
           ("dog bed", "cat bed", "pet blanket"),
           ("usb c cable", "lightning cable", "cable organizer"),
           ("rain jacket", "softshell jacket", "waterproofing spray"),
           ("camping tent", "pop up tent", "tent stakes")],
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
           ("sartén", "wok", "tapa de sartén"),
           ("cepillo de dientes eléctrico", "cepillo de dientes manual", "cabezales de recambio"),
           ("silla de oficina", "silla gaming", "cojín de asiento"),
           ("altavoz bluetooth", "barra de sonido", "soporte para altavoz"),
           ("freidora de aire", "horno tostador", "papel para freidora de aire"),
           ("cama para perro", "cama para gato", "manta para mascotas"),
           ("cable usb c", "cable lightning", "organizador de cables"),
           ("chubasquero", "chaqueta softshell", "spray impermeabilizante"),
           ("tienda de campaña", "tienda de campaña instantánea", "piquetas")],
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
           ("フライパン", "中華鍋", "フライパン蓋"),
           ("電動歯ブラシ", "手磨き歯ブラシ", "替えブラシ"),
           ("オフィスチェア", "ゲーミングチェア", "座布団クッション"),
           ("Bluetoothスピーカー", "サウンドバー", "スピーカースタンド"),
           ("ノンフライヤー", "オーブントースター", "ノンフライヤー用シート"),
           ("犬用ベッド", "猫用ベッド", "ペット用ブランケット"),
           ("USB-Cケーブル", "ライトニングケーブル", "ケーブルホルダー"),
           ("レインジャケット", "ソフトシェルジャケット", "防水スプレー"),
           ("キャンプテント", "ワンタッチテント", "テント用ペグ")],
}
N_FAMILIES = len(FAMILIES["us"])
COLORS = {"us": ["black", "white", "red", "blue", "green", "gray", "pink", "silver", "navy", "beige", "brown",
                 "purple", "yellow", "orange", "gold", "teal"],
          "es": ["negro", "blanco", "rojo", "azul", "verde", "gris", "rosa", "plateado", "azul marino", "beige",
                 "marrón", "morado", "amarillo", "naranja", "dorado", "turquesa"],
          "jp": ["ブラック", "ホワイト", "レッド", "ブルー", "グリーン", "グレー", "ピンク", "シルバー", "ネイビー",
                 "ベージュ", "ブラウン", "パープル", "イエロー", "オレンジ", "ゴールド", "ターコイズ"]}
COLOR_WEIGHTS = np.array([20, 14, 7, 9, 5, 9, 5, 6, 5, 4, 4, 3, 2, 2, 3, 2], float)
# the first brands of each locale (all of them at sample size); more are made from syllables as the catalog grows
BRANDS = {"us": ["Norvik", "Altura", "Kestrel", "Lumora", "Vantix", "Brightwell"],
          "es": ["Norvik", "Altura", "Tessaly", "Zanto", "Mirelle", "Vantix"],
          "jp": ["アルトラ", "ケストレル", "山田工業", "Norvik", "ルモラ", "匠屋"]}
BRAND_SYLLABLES = ["al", "an", "ar", "bel", "bri", "ca", "cor", "da", "del", "el", "en", "fa", "fin", "ga", "hal",
                   "is", "ka", "ken", "la", "lin", "lu", "ma", "mar", "mi", "mo", "na", "nor", "no", "or", "pa",
                   "pel", "qua", "ra", "ri", "ro", "sa", "sel", "so", "ta", "tem", "ter", "tri", "ul", "va", "ven",
                   "vi", "vo", "wel", "xa", "yo", "za", "zen"]
BRAND_ENDINGS = ["", "", "", "", "ix", "ex", "on", "a", "o", "is", "ar", "tech", "ly", "io", "us", "en", "ia"]
BRAND_WORDS = [" Home", " Pro", " Labs", " Gear", " Sports", " Living", " Design", " Co"]
KANA_SYLLABLES = list("アカサタナハマヤラワキシチニヒミリクスツヌフムユルケセテネヘメレコソトノホモヨロ") + \
    ["ガ", "ザ", "ダ", "バ", "パ", "ン", "ー", "ル", "ス"]
KANJI_ENDINGS = ["工業", "堂", "屋", "製作所", "商店", "電機"]
ADJECTIVES = {"us": ["premium", "lightweight", "durable", "compact", "professional", "classic", "portable",
                     "ergonomic", "heavy duty", "ultra thin", "modern", "foldable", "waterproof", "adjustable",
                     "eco-friendly", "deluxe"],
              "es": ["premium", "ligero", "resistente", "compacto", "profesional", "clásico", "portátil",
                     "ergonómico", "reforzado", "ultrafino", "moderno", "plegable", "impermeable", "ajustable",
                     "ecológico", "de lujo"],
              "jp": ["高品質", "軽量", "丈夫な", "コンパクト", "プロ仕様", "定番", "携帯用", "人間工学", "頑丈",
                     "薄型", "モダン", "折りたたみ", "防水", "調節可能", "エコ", "高級"]}
MODEL_PREFIXES = ["X", "K", "R", "T", "V", "Z", "M", "S", "Q", "P", "A", "GX", "KR", "TX", "VX", "HD", "LX", "MX",
                  "Pro ", "Air ", "Max ", "Neo ", "S2 ", "V3 "]
# title = head + extras (joined by the format's separator) + tail; {mpre}{mnum} is a model number
TITLE_FORMATS = {"us": [("{brand} {adj} {type} {mpre}-{mnum}", ", ", " - {color}"),
                        ("{brand} {type}, {adj}", ", ", ", {color}, {mpre}{mnum}"),
                        ("{adj} {type} by {brand}", " | ", " ({color})")],
                 "es": [("{brand} {type} {adj} {mpre}-{mnum}", ", ", ", {color}"),
                        ("{type} {brand} {adj}", " - ", " - {color}"),
                        ("{brand} - {type} {adj} {mpre}{mnum}", ", ", " ({color})")],
                 "jp": [("{brand} {type} {adj} {mpre}-{mnum}", " ", " {color}"),
                        ("【{adj}】{brand} {type}", " ", " ({color})"),
                        ("{type} {brand} {mpre}{mnum}", " ", " 【{color}】")]}
TITLE_FORMAT_WEIGHTS = [0.5, 0.3, 0.2]
TITLE_EXTRAS = {
    "us": ["with Carrying Case", "for Men and Women", "{num} Pack", "Upgraded Version", "Easy to Clean", "Non-Slip",
           "Rechargeable", "Long Battery Life", "Stainless Steel", "BPA Free", "Gift Set", "for Home and Office",
           "for Travel", "Extra Large", "Compact Size", "Quick Dry", "Anti-Scratch", "Heavy Duty", "Multi-Purpose",
           "Ultra Quiet", "Fast Charging", "Adjustable", "Breathable", "Leak Proof", "Dishwasher Safe",
           "Scratch Resistant", "Premium Quality", "{num} Inch", "Set of {num}", "{num}-Year Warranty",
           "Latest Model"],
    "es": ["con estuche de transporte", "para hombre y mujer", "pack de {num}", "versión mejorada",
           "fácil de limpiar", "antideslizante", "recargable", "batería de larga duración", "acero inoxidable", "sin BPA",
           "set de regalo", "para casa y oficina", "para viajes", "extra grande", "tamaño compacto", "secado rápido",
           "antiarañazos", "uso intensivo", "multiusos", "ultra silencioso", "carga rápida", "ajustable",
           "transpirable", "a prueba de fugas", "apto para lavavajillas", "resistente a los arañazos",
           "calidad premium", "{num} pulgadas", "juego de {num}", "garantía de {num} años", "último modelo"],
    "jp": ["収納ケース付き", "メンズ レディース", "{num}個セット", "改良版", "お手入れ簡単", "滑り止め", "充電式",
           "長時間バッテリー", "ステンレス製", "BPAフリー", "ギフトセット", "家庭用 オフィス用", "旅行用", "大容量",
           "コンパクトサイズ", "速乾", "傷防止", "ハードユース対応", "多機能", "静音設計", "急速充電", "サイズ調整可能",
           "通気性抜群", "漏れ防止", "食洗機対応", "傷に強い", "高品質素材", "{num}インチ", "{num}点セット",
           "{num}年保証", "最新モデル"]}
# sentences of bullets and descriptions; & and " become entities in HTML descriptions
SENTENCES = {
    "us": ["The {brand} {type} is built to last and made for everyday use.",
           "Its {adj} design makes it easy to take anywhere you go.",
           "Available in {color}, it matches any style and setting.",
           "Package includes: 1 x {type} & 1 x user manual.",
           "Made from high quality materials that are tested for durability and safety.",
           "Easy to clean: simply wipe with a damp cloth and let it air dry.",
           "Backed by a {num}-year warranty and friendly customer support from {brand}.",
           "Measures about {num}\" across, so it fits in most bags, drawers and cabinets.",
           "A thoughtful gift for birthdays, holidays, anniversaries and housewarmings.",
           "Every {type} is inspected before it leaves our warehouse.",
           "The {color} finish resists scratches, fading and fingerprints.",
           "Lightweight yet sturdy, it is comfortable to hold and simple to store.",
           "Designed by {brand} engineers after listening to thousands of customer reviews.",
           "We offer a 30-day money back guarantee if you are not completely satisfied.",
           "Please check the size chart in the pictures before ordering.",
           "Compatible with most standard models; see the product details for exact dimensions.",
           "Perfect for home, office, travel, camping and outdoor activities.",
           "Tools & accessories shown in the photos are not included.",
           "Customers call it \"the best {type} for the price\".",
           "The ergonomic shape reduces strain during long sessions.",
           "Non-toxic and BPA free, safe for the whole family including kids.",
           "Set up takes less than a minute and no tools are required.",
           "Our {adj} {type} in {color} is one of the most popular choices in its class.",
           "Water resistant construction keeps it working in rain, snow and spills.",
           "The reinforced edges prevent wear and tear even after years of daily use.",
           "Colors may vary slightly due to different monitor settings.",
           "Thousands of happy customers trust {brand} for quality they can feel.",
           "It saves space and folds flat when you don't need it.",
           "Each order ships in eco-friendly packaging made from recycled paper.",
           "Pair it with other {brand} products for a complete, coordinated setup.",
           "The smooth surface feels premium and looks great on any desk or shelf.",
           "If you have any questions, please contact us and we will reply within 24 hours.",
           "Upgraded materials make this version {num}% stronger than the previous model.",
           "Whether you are a beginner or a pro, this {type} delivers reliable results.",
           "Hand wash recommended to keep the {color} color bright and clean.",
           "Note: please allow 1-2 cm difference due to manual measurement."],
    "es": ["El {type} de {brand} está diseñado para durar y para el uso diario.",
           "Su diseño {adj} permite llevarlo a cualquier parte.",
           "Disponible en color {color}, combina con cualquier estilo y ambiente.",
           "El paquete incluye: 1 x {type} & 1 x manual de instrucciones.",
           "Fabricado con materiales de alta calidad, probados para garantizar su resistencia y seguridad.",
           "Fácil de limpiar: basta con pasar un paño húmedo y dejar secar al aire.",
           "Cuenta con {num} años de garantía y atención al cliente de {brand}.",
           "Mide unos {num} cm, por lo que cabe en la mayoría de bolsos, cajones y armarios.",
           "Un regalo ideal para cumpleaños, Navidad, aniversarios y el Día del Padre.",
           "Cada {type} se revisa antes de salir de nuestro almacén.",
           "El acabado {color} resiste arañazos, decoloración y huellas.",
           "Ligero pero robusto, es cómodo de sujetar y fácil de guardar.",
           "Diseñado por los ingenieros de {brand} tras escuchar miles de opiniones de clientes.",
           "Ofrecemos una garantía de devolución de 30 días si no queda completamente satisfecho.",
           "Consulte la tabla de tallas de las imágenes antes de realizar el pedido.",
           "Compatible con la mayoría de modelos estándar; consulte los detalles para conocer las medidas exactas.",
           "Perfecto para casa, oficina, viajes, camping y actividades al aire libre.",
           "Las herramientas & accesorios de las fotos no están incluidos.",
           "Nuestros clientes lo llaman \"el mejor {type} calidad-precio\".",
           "Su forma ergonómica reduce la tensión durante las sesiones largas.",
           "No tóxico y libre de BPA, seguro para toda la familia, incluidos los niños.",
           "El montaje lleva menos de un minuto y no requiere herramientas.",
           "Nuestro {type} {adj} en {color} es una de las opciones más populares de su categoría.",
           "Su construcción resistente al agua lo mantiene funcionando bajo la lluvia, la nieve o con derrames.",
           "Los bordes reforzados evitan el desgaste incluso después de años de uso diario.",
           "Los colores pueden variar ligeramente según la configuración de la pantalla.",
           "Miles de clientes satisfechos confían en {brand} por su calidad.",
           "Ahorra espacio y se pliega por completo cuando no lo necesita.",
           "Cada pedido se envía en un embalaje ecológico de papel reciclado.",
           "Combínelo con otros productos de {brand} para un conjunto completo y coordinado.",
           "La superficie suave tiene un tacto premium y queda genial en cualquier escritorio o estantería.",
           "Si tiene alguna pregunta, contáctenos y le responderemos en menos de 24 horas.",
           "Los materiales mejorados hacen que esta versión sea un {num}% más resistente que el modelo anterior.",
           "Tanto si es principiante como profesional, este {type} ofrece resultados fiables.",
           "Se recomienda lavar a mano para mantener el color {color} brillante.",
           "Nota: puede haber una diferencia de 1-2 cm debido a la medición manual."],
    "jp": ["{brand}の{type}は毎日使える丈夫な作りです。",
           "{adj}デザインで、どこへでも持ち運べます。",
           "カラーは{color}で、どんなインテリアにも合わせやすいです。",
           "セット内容：{type}×1 & 取扱説明書×1",
           "高品質な素材を使用し、耐久性と安全性のテストを行っています。",
           "お手入れは濡れた布で拭くだけで簡単です。",
           "{brand}による{num}年間の品質保証付きで安心です。",
           "サイズは約{num}cmで、バッグや引き出しにすっきり収まります。",
           "誕生日やクリスマス、父の日・母の日のプレゼントに最適です。",
           "すべての{type}は出荷前に検品しています。",
           "{color}の表面は傷や色あせ、指紋がつきにくい仕上げです。",
           "軽量ながら頑丈で、持ちやすく収納も簡単です。",
           "お客様の声をもとに{brand}のエンジニアが設計しました。",
           "ご満足いただけない場合は30日間返金保証をご利用いただけます。",
           "ご注文の前に画像のサイズ表をご確認ください。",
           "ほとんどの標準モデルに対応しています。詳しい寸法は商品詳細をご覧ください。",
           "自宅、オフィス、旅行、キャンプなど様々なシーンで活躍します。",
           "写真の工具 & アクセサリーは付属しません。",
           "「この価格で最高の{type}」と多くのお客様から好評です。",
           "人間工学に基づいた形状で、長時間の使用でも疲れにくいです。",
           "BPAフリーの無毒素材で、お子様にも安心してお使いいただけます。",
           "工具不要で、1分以内に組み立てられます。",
           "{color}の{adj}{type}は、同カテゴリーで人気の高いモデルです。",
           "防水構造で、雨や雪、水こぼれにも強いです。",
           "補強された縁で、長年使っても摩耗しにくいです。",
           "モニターの設定により、実際の色と若干異なる場合があります。",
           "多くのお客様に選ばれている{brand}の品質をお試しください。",
           "使わないときは折りたたんで省スペースで収納できます。",
           "再生紙を使用した環境に優しい梱包でお届けします。",
           "{brand}の他の製品と組み合わせて、統一感のあるセットにできます。",
           "なめらかな表面は高級感があり、デスクや棚にもよく映えます。",
           "ご不明な点がございましたら、お気軽にお問い合わせください。24時間以内に返信いたします。",
           "素材を改良し、従来モデルより{num}%強度が向上しました。",
           "初心者からプロまで、この{type}なら安定した結果が得られます。",
           "\"{brand}\"は登録商標です。類似品にご注意ください。",
           "手作業で測定しているため、1〜2cmの誤差がある場合がございます。"]}
BULLET_HEADERS = {
    "us": ["DURABLE DESIGN", "EASY TO USE", "WHAT YOU GET", "PERFECT GIFT", "PREMIUM MATERIALS", "COMFORTABLE FIT",
           "WIDE COMPATIBILITY", "WORRY-FREE WARRANTY", "LIGHTWEIGHT & PORTABLE", "HIGH PERFORMANCE", "EASY CARE",
           "SAFE & HEALTHY", "VERSATILE USE", "SPACE SAVING", "STYLISH LOOK"],
    "es": ["DISEÑO RESISTENTE", "FÁCIL DE USAR", "CONTENIDO DEL PAQUETE", "REGALO PERFECTO", "MATERIALES PREMIUM",
           "AJUSTE CÓMODO", "AMPLIA COMPATIBILIDAD", "GARANTÍA SIN PREOCUPACIONES", "LIGERO & PORTÁTIL",
           "ALTO RENDIMIENTO", "CUIDADO SENCILLO", "SEGURO Y SALUDABLE", "USO VERSÁTIL", "AHORRA ESPACIO",
           "ESTILO ELEGANTE"],
    "jp": ["高品質素材", "簡単操作", "セット内容", "ギフトに最適", "快適なフィット感", "幅広い互換性", "安心の保証",
           "軽量 & 携帯性", "高性能", "お手入れ簡単", "安全・安心", "多用途", "省スペース", "おしゃれなデザイン",
           "丈夫な作り"]}
BULLET_HEADER_FORMAT = {"us": "{}: ", "es": "{}: ", "jp": "【{}】"}
# query words; the empty qualifier/modifier is drawn with probability P_NO_QUALIFIER / P_NO_MODIFIER
QUALIFIERS = {"us": ["cheap ", "best ", "good ", "top rated ", "new ", "used ", "small ", "large ", "mini ", "big ",
                     "kids ", "men's ", "women's ", "professional ", "portable ", "heavy duty ", "lightweight ",
                     "waterproof ", "affordable ", "premium ", "quality ", "durable ", "cute ", "vintage ",
                     "modern ", "travel ", "outdoor ", "gift ", "budget ", "sturdy "],
              "es": ["barato ", "mejor ", "oferta ", "nuevo ", "mini ", "comprar ", "original ", "top ", "pack ",
                     "kit ", "set ", "outlet ", "chollo ", "regalo ", "profesional ", "premium ", "moderno ",
                     "clásico ", "económico ", "ligero "],
              "jp": ["安い ", "おすすめ ", "人気 ", "新品 ", "小さい ", "大きい ", "ミニ ", "子供用 ", "メンズ ",
                     "レディース ", "プロ用 ", "携帯用 ", "高級 ", "軽量 ", "防水 ", "おしゃれ ", "かわいい ",
                     "シンプル ", "業務用 ", "プレゼント "]}


def _expand(words, pattern, numbers):
    return words + [pattern.format(n) for n in numbers]


MODIFIERS = {
    "us": _expand(_expand(_expand(_expand(_expand(_expand(
        [" for men", " for women", " for kids", " for travel", " for home", " for office", " for gift",
         " for beginners", " waterproof", " large", " small", " xl", " set", " bundle", " with case", " replacement",
         " on sale", " deal", " 2024", " 2023", " under 20 dollars", " under 50 dollars", " under 100",
         " for christmas", " for teens", " heavy duty", " compact", " refurbished", " best seller", " kit"],
        " {} pack", range(2, 13)), " set of {}", range(2, 9)), " {} inch", range(5, 31)),
        " {} oz", [8, 10, 12, 16, 20, 24, 32, 40, 64]), " {} piece", range(2, 11)), " size {}", range(5, 14)),
    "es": _expand(_expand(_expand(_expand(_expand(_expand(
        [" para hombre", " para mujer", " para niños", " para viaje", " para casa", " para oficina",
         " para regalo", " impermeable", " grande", " pequeño", " xl", " set", " con funda", " recambio", " oferta",
         " barato", " 2024", " 2023", " menos de 20 euros", " menos de 50 euros", " amazon", " para navidad",
         " profesional", " compacto", " reacondicionado", " original"],
        " pack {}", range(2, 13)), " {} unidades", range(2, 11)), " {} cm", range(10, 65, 5)),
        " {} pulgadas", range(5, 31)), " talla {}", range(36, 47)), " {} litros", [1, 2, 3, 4, 5, 10, 20]),
    "jp": _expand(_expand(_expand(_expand(_expand(_expand(
        [" おすすめ", " 人気", " 安い", " メンズ", " レディース", " 子供", " 旅行", " 家庭用", " 業務用", " 防水",
         " 大きめ", " 小さめ", " セット", " ケース付き", " 替え", " セール", " 2024", " 2023", " 1000円以下",
         " 3000円以下", " ギフト", " クリスマス", " 軽量", " コンパクト", " 中古"],
        " {}個セット", range(2, 13)), " {}cm", range(10, 65, 5)), " {}インチ", range(5, 31)),
        " {}本", range(2, 11)), " {}L", [1, 2, 3, 4, 5, 10, 20]), " {}枚", range(2, 11))}
P_NO_QUALIFIER, P_NO_MODIFIER = 0.45, 0.4
# query text per (locale, constraint none/brand/color); one variant drawn uniformly
QUERY_FORMATS = {"us": [["{qual}{type}{mod}"], ["{qual}{brand} {type}{mod}", "{qual}{brand} {type}{mod}",
                                                "{qual}{type} {brand}{mod}"],
                        ["{qual}{type} {color}{mod}", "{qual}{color} {type}{mod}"]],
                 "es": [["{qual}{type}{mod}"], ["{qual}{type} {brand}{mod}", "{qual}{brand} {type}{mod}"],
                        ["{qual}{type} {color}{mod}"]],
                 "jp": [["{qual}{type}{mod}"], ["{qual}{brand} {type}{mod}", "{qual}{brand}{type}{mod}"],
                        ["{qual}{type} {color}{mod}", "{qual}{color} {type}{mod}"]]}
CONSTRAINT_SHARE = [0.35, 0.3, 0.35]  # none, brand, color

# sizes: catalog products drawn per query, CATALOG_PER_QUERY / (1 + (CATALOG_HALF_AT / n)^2) (the unjudged ones are
# dropped: about 0.7 products per judgement remain at release size, fewer in the small sample, whose products recur
# across queries as before), kind shares within a family, brands per catalog product, the smallest type
CATALOG_PER_QUERY = 24.0
CATALOG_HALF_AT = 450
KIND_SHARE = (0.46, 0.46, 0.08)
MIN_PER_TYPE = (12, 12, 4)
PRODUCTS_PER_BRAND = 150
BRAND_ZIPF = 1.0
ES_REUSED_ID_SHARE = 0.05
MISSING = {"description": 0.45, "bullets": 0.15, "brand": 0.05, "color": 0.35}
PRODUCT_CHUNK = 100_000
EXAMPLE_CHUNK = 250_000

SLOTS = ("brand", "type", "color", "adj", "mpre", "mnum", "num", "qual", "mod")
EXAMPLE_SCHEMA = pa.schema([("example_id", pa.int64()), ("query", pa.string()), ("query_id", pa.int64()),
                            ("product_id", pa.string()), ("product_locale", pa.string()),
                            ("esci_label", pa.string()), ("small_version", pa.int64()),
                            ("large_version", pa.int64()), ("split", pa.string())])
PRODUCT_SCHEMA = pa.schema([(c, pa.string()) for c in (
    "product_id", "product_title", "product_description", "product_bullet_point", "product_brand", "product_color",
    "product_locale")])


def _rng(seed: int, *stream: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *stream])


def _coprime(n: np.ndarray, start: np.ndarray) -> np.ndarray:
    """A step in [1, n) near `start` with gcd(step, n) == 1 (1 where n <= 2), so (a + j * step) % n visits every
    residue once per n steps."""
    n = np.asarray(n, np.int64)
    s = np.clip(np.asarray(start, np.int64), 1, np.maximum(n - 1, 1))
    bad = np.gcd(s, n) != 1
    while bad.any():
        s[bad] = np.where(s[bad] + 1 < n[bad], s[bad] + 1, 1)
        bad = np.gcd(s, n) != 1
    return s


def _expand_rows(counts: np.ndarray):
    """(row of each item, rank of the item within its row) for rows holding counts[i] items."""
    counts = np.asarray(counts, np.int64)
    rows = np.repeat(np.arange(len(counts), dtype=np.int64), counts)
    first = np.cumsum(counts) - counts
    return rows, np.arange(len(rows), dtype=np.int64) - first[rows]


def _distinct_ids(rng, rows, rank, lo, n):
    """Ids lo[row] + k with k distinct within a row (until the row has more than n[row] items)."""
    nr = len(lo)
    start = rng.integers(0, n, nr) if nr else np.zeros(0, np.int64)
    step = _coprime(n, rng.integers(1, np.maximum(n, 2), nr))
    return lo[rows] + (start[rows] + rank * step[rows]) % n[rows]


def _count(rng, n, mean, sigma, lo, hi):
    """Lognormal-like integer counts with the given mean (before clipping) and spread."""
    mu = np.log(mean) - sigma ** 2 / 2
    return np.clip(np.rint(rng.lognormal(mu, sigma, n)), lo, hi).astype(np.int64)


def _with_nulls(arr: pa.Array, missing: np.ndarray) -> pa.Array:
    """The same strings with rows where `missing` is true set to null (those rows render as "")."""
    arr = pa.concat_arrays([arr]) if arr.offset else arr
    valid = pa.py_buffer(np.packbits(~missing, bitorder="little"))
    return pa.StringArray.from_buffers(len(arr), arr.buffers()[1], arr.buffers()[2], valid,
                                       int(missing.sum()))


class _Text:
    """Interned strings and templates: every generated text is a row-wise concatenation of vocabulary pieces.

    A template ("The {brand} {type} ...") compiles into piece codes: vocabulary ids for its literal parts and
    -(slot + 1) for each slot, filled per row from a slot matrix. `render` assembles units (row, prefix piece,
    template, suffix piece), sorted by row, into one string per row with pyarrow (take + list join)."""

    EMPTY = 0

    def __init__(self):
        self.strings, self.ids = [""], {"": 0}
        self.codes, self.starts, self.lens = [], [], []

    def word(self, s: str) -> int:
        i = self.ids.get(s)
        if i is None:
            i = self.ids[s] = len(self.strings)
            self.strings.append(s)
        return i

    def words(self, items) -> np.ndarray:
        return np.array([self.word(s) for s in items], np.int32)

    def template(self, text: str, escape: bool = False) -> int:
        parts = re.split(r"\{(\w+)\}", text)
        codes = []
        for i, part in enumerate(parts):
            if i % 2:
                codes.append(-(SLOTS.index(part) + 1))
            elif part:
                codes.append(self.word(html.escape(part) if escape else part))
        self.starts.append(sum(self.lens))
        self.lens.append(len(codes))
        self.codes.extend(codes)
        return len(self.lens) - 1

    def templates(self, texts, escape: bool = False) -> int:
        """Compile a bank; returns the id of its first template (the bank's ids are consecutive)."""
        ids = [self.template(t, escape) for t in texts]
        return ids[0]

    def freeze(self):
        self.vocab = pa.array(self.strings, pa.string())
        self.flat = np.array(self.codes + [0], np.int32)
        self.t_start = np.array(self.starts, np.int64)
        self.t_len = np.array(self.lens, np.int64)

    def render(self, n_rows, row, pre, tmpl, suf, slots: np.ndarray) -> pa.Array:
        """Strings of n_rows rows; units must be sorted by row (rows without units give "")."""
        if len(row) == 0:
            return pa.array([""] * n_rows, pa.string())
        length = self.t_len[tmpl] + 2
        end = np.cumsum(length)
        first = end - length
        unit = np.repeat(np.arange(len(row), dtype=np.int64), length)
        pos = np.arange(end[-1], dtype=np.int64) - first[unit] - 1
        codes = self.flat[np.clip(self.t_start[tmpl][unit] + pos, 0, len(self.flat) - 1)]
        codes[first] = pre
        codes[end - 1] = suf
        piece_row = row[unit]
        del unit, pos
        hole = np.flatnonzero(codes < 0)
        codes[hole] = slots[-codes[hole] - 1, piece_row[hole]]
        keep = codes != self.EMPTY
        codes, piece_row = codes[keep], piece_row[keep]
        offsets = np.zeros(n_rows + 1, np.int32)
        offsets[1:] = np.cumsum(np.bincount(piece_row, minlength=n_rows))
        pieces = self.vocab.take(pa.array(codes))
        return pc.binary_join(pa.ListArray.from_arrays(pa.array(offsets), pieces), "")


def _brand_names(loc: str, n: int, rng: np.random.Generator) -> list[str]:
    """The locale's first brands, then made-up ones from syllables (unique), n in all."""
    names = list(BRANDS[loc])
    seen = set(names)
    while len(names) < n:
        m = 2 * (n - len(names)) + 16
        syl = rng.integers(0, len(BRAND_SYLLABLES), (m, 3))
        n_syl = rng.integers(2, 4, m)
        end = rng.integers(0, len(BRAND_ENDINGS), m)
        word = rng.integers(0, len(BRAND_WORDS), m)
        has_word = rng.random(m) < 0.1
        kana = rng.integers(0, len(KANA_SYLLABLES), (m, 4))
        n_kana = rng.integers(2, 5, m)
        kanji = rng.integers(0, len(KANJI_ENDINGS), m)
        style = rng.random(m)
        for i in range(m):  # one per brand name: thousands at release size
            if loc == "jp" and style[i] < 0.75:
                name = "".join(KANA_SYLLABLES[k] for k in kana[i, :n_kana[i]]).lstrip("ンー")
                if style[i] < 0.15:
                    name += KANJI_ENDINGS[kanji[i]]
                if len(name) < 2:
                    continue
            else:
                name = ("".join(BRAND_SYLLABLES[k] for k in syl[i, :n_syl[i]]) + BRAND_ENDINGS[end[i]]).capitalize()
                if has_word[i]:
                    name += BRAND_WORDS[word[i]]
            if name not in seen:
                seen.add(name)
                names.append(name)
                if len(names) == n:
                    break
    return names


class _Sample:
    """The whole data set as compact arrays; texts are rendered chunk by chunk when written."""

    def __init__(self, n_queries: int, seed: int = 0, noise: float = 0.05):
        if n_queries < 1:
            raise ValueError(f"n_queries must be positive, got {n_queries}")
        if not 0 <= noise < 1:
            raise ValueError(f"noise must be in [0, 1), got {noise}")
        self.n_queries, self.seed, self.noise = int(n_queries), int(seed), float(noise)
        self.text = _Text()
        self._catalog()
        self._banks()
        self.text.freeze()
        self._queries()
        self._judgements()

    # ---------------------------------------------------------------- catalog: types, brands, colors per product
    def _catalog(self):
        rng = _rng(self.seed, 1)
        F, nq = N_FAMILIES, self.n_queries
        self.n_types = 3 * F * len(LOCALES)
        per_type = np.zeros(self.n_types, np.int64)
        self.brand_off, brand_names = [0], []
        loc_of, fam_of, typ_of, brand_of = [], [], [], []
        for li, loc in enumerate(LOCALES):
            n_loc = CATALOG_PER_QUERY / (1 + (CATALOG_HALF_AT / nq) ** 2) * nq * LOCALE_SHARE[loc]
            for k in range(3):
                per_type[li * 3 * F + k:(li + 1) * 3 * F:3] = max(MIN_PER_TYPE[k], round(n_loc * KIND_SHARE[k] / F))
            types = np.repeat(np.arange(li * 3 * F, (li + 1) * 3 * F), per_type[li * 3 * F:(li + 1) * 3 * F])
            types = types[rng.permutation(len(types))]  # the file's order: random within the locale
            fam = (types - li * 3 * F) // 3
            n_brands = max(len(BRANDS[loc]), int(len(types) // PRODUCTS_PER_BRAND))
            names = _brand_names(loc, n_brands, rng)
            # Zipf-like brand popularity, a different ranking in every family
            cdf = np.cumsum(1 / np.arange(1, n_brands + 1) ** BRAND_ZIPF)
            rank = np.minimum(np.searchsorted(cdf / cdf[-1], rng.random(len(types))), n_brands - 1)
            ranking = np.argsort(rng.random((F, n_brands)), axis=1)
            loc_of.append(np.full(len(types), li, np.int8))
            fam_of.append(fam)
            typ_of.append(types)
            brand_of.append(self.brand_off[-1] + ranking[fam, rank])
            brand_names += names
            self.brand_off.append(self.brand_off[-1] + n_brands)
        self.loc = np.concatenate(loc_of)
        self.typ = np.concatenate(typ_of).astype(np.int32)
        self.brand = np.concatenate(brand_of).astype(np.int32)
        n = len(self.typ)
        p = COLOR_WEIGHTS / COLOR_WEIGHTS.sum()
        n_col = len(COLOR_WEIGHTS)
        self.n_colors = n_col * len(LOCALES)
        self.color = (self.loc.astype(np.int32) * n_col + rng.choice(n_col, n, p=p)).astype(np.int32)
        # assignment orders: by type then brand (order 1) or type then color (order 2), file order within ties;
        # a type's products hold the same positions in both
        self.perm = {1: np.lexsort((self.brand, self.typ)), 2: np.lexsort((self.color, self.typ))}
        typ_sorted = self.typ[self.perm[1]]
        self.t_lo = np.searchsorted(typ_sorted, np.arange(self.n_types), "left")
        self.t_hi = np.searchsorted(typ_sorted, np.arange(self.n_types), "right")
        self.n_brands = self.brand_off[-1]
        self.key1 = (self.typ.astype(np.int64) * self.n_brands + self.brand)[self.perm[1]]
        self.key2 = (self.typ.astype(np.int64) * self.n_colors + self.color)[self.perm[2]]
        t = self.text
        self.brand_vid = t.words(brand_names)
        self.brand_vid_lower = t.words([b.lower() for b in brand_names])
        self.brand_names = pa.array(brand_names, pa.string())
        self.type_vid = t.words([name for loc in LOCALES for fam in FAMILIES[loc] for name in fam])
        self.color_vid = t.words([c for loc in LOCALES for c in COLORS[loc]])
        self.color_names = pa.array([c for loc in LOCALES for c in COLORS[loc]], pa.string())

    # ---------------------------------------------------------------- word banks
    def _banks(self):
        t = self.text
        nl = len(LOCALES)
        self.adj_vid = t.words([a for loc in LOCALES for a in ADJECTIVES[loc]])
        self.n_adj = len(ADJECTIVES["us"])
        self.mpre_vid = t.words(MODEL_PREFIXES)
        self.mnum_vid = t.words([str(i) for i in range(10, 1000)])
        self.num_vid = t.words([str(i) for i in range(2, 13)])

        def bank(items: dict, escape=False):
            lo = np.array([t.templates(items[loc], escape) for loc in LOCALES], np.int64)
            return lo, np.array([len(items[loc]) for loc in LOCALES], np.int64)

        def words(items: dict):
            vid = t.words([w for loc in LOCALES for w in items[loc]])
            n = np.array([len(items[loc]) for loc in LOCALES], np.int64)
            return vid, np.concatenate([[0], np.cumsum(n)[:-1]]), n

        self.head = np.array([[t.template(f[0]) for f in TITLE_FORMATS[loc]] for loc in LOCALES], np.int64)
        self.tail = np.array([[t.template(f[2]) for f in TITLE_FORMATS[loc]] for loc in LOCALES], np.int64)
        self.sep = np.array([[t.word(f[1]) for f in TITLE_FORMATS[loc]] for loc in LOCALES], np.int32)
        self.extras = bank(TITLE_EXTRAS)
        self.sentences = bank(SENTENCES)
        self.sentences_html = bank(SENTENCES, escape=True)
        self.bullet_header = t.words([BULLET_HEADER_FORMAT[loc].format(h) for loc in LOCALES
                                      for h in BULLET_HEADERS[loc]]).reshape(nl, -1)
        esc = [[html.escape(h) for h in BULLET_HEADERS[loc]] for loc in LOCALES]
        self.p_header = t.words([f"<p><b>{h}</b> " for hs in esc for h in hs]).reshape(nl, -1)
        self.br_header = t.words([f"<b>{h}</b><br>" for hs in esc for h in hs]).reshape(nl, -1)
        self.markup = {s: t.word(s) for s in (" ", "\n", "<p>", "</p>", "<br>", "<br><br>", "<ul><li>", "<li>",
                                              "</li>", "</li></ul>")}
        self.quals = words(QUALIFIERS)
        self.mods = words(MODIFIERS)
        self.query_fmt = np.zeros((nl, 3), np.int64)
        self.query_fmt_n = np.zeros((nl, 3), np.int64)
        for li, loc in enumerate(LOCALES):
            for c, fmts in enumerate(QUERY_FORMATS[loc]):
                self.query_fmt[li, c], self.query_fmt_n[li, c] = t.templates(fmts), len(fmts)

    # ---------------------------------------------------------------- queries: unique texts
    def _draw_queries(self, rng, m):
        F = N_FAMILIES
        loc = rng.choice(len(LOCALES), m, p=[LOCALE_SHARE[c] for c in LOCALES])
        fam, kind = rng.integers(0, F, m), rng.integers(0, 2, m)
        typ = (loc * F + fam) * 3 + kind
        cons = rng.choice(3, m, p=CONSTRAINT_SHARE)
        # the named brand/color is that of a random product of the type (popular brands are named more)
        ref = self.perm[1][self.t_lo[typ] + (rng.random(m) * (self.t_hi[typ] - self.t_lo[typ])).astype(np.int64)]
        brand, color = self.brand[ref], self.color[ref]
        slots = np.zeros((len(SLOTS), m), np.int32)
        lower = rng.random(m) < 0.5
        slots[0] = np.where(lower, self.brand_vid_lower[brand], self.brand_vid[brand])
        slots[1] = self.type_vid[typ]
        slots[2] = self.color_vid[color]
        for i, (vid, off, n), p_none in ((7, self.quals, P_NO_QUALIFIER), (8, self.mods, P_NO_MODIFIER)):
            pick = vid[off[loc] + (rng.random(m) * n[loc]).astype(np.int64)]
            slots[i] = np.where(rng.random(m) < p_none, _Text.EMPTY, pick)
        tmpl = self.query_fmt[loc, cons] + (rng.random(m) * self.query_fmt_n[loc, cons]).astype(np.int64)
        rows = np.arange(m)
        text = self.text.render(m, rows, np.zeros(m, np.int32), tmpl, np.zeros(m, np.int32), slots)
        return dict(loc=loc.astype(np.int8), fam=fam, kind=kind, typ=typ, cons=cons, brand=brand, color=color), text

    def _queries(self):
        n, drawn, texts, it = self.n_queries, [], [], 0
        while True:
            have = int((~pd.Series(pa.chunked_array(texts, pa.string()).to_pandas()).duplicated()).sum()) \
                if texts else 0
            if have >= n:
                break
            if it == 60:
                raise RuntimeError(f"only {have} distinct query texts after {it} rounds; the templates cannot "
                                   f"make {n}")
            attrs, text = self._draw_queries(_rng(self.seed, 2, it), max(int(1.25 * (n - have)), 64))
            drawn.append(attrs)
            texts.append(text)
            it += 1
        all_text = pa.chunked_array(texts, pa.string()).combine_chunks()
        keep = np.flatnonzero(~pd.Series(all_text.to_pandas()).duplicated().to_numpy())[:n]
        q = {k: np.concatenate([d[k] for d in drawn])[keep] for k in drawn[0]}
        self.q = q
        self.q_text = all_text.take(pa.array(keep))
        rng = _rng(self.seed, 3)
        self.q_small = (rng.random(n) < 0.5).astype(np.int64)
        self.q_train = rng.random(n) < 0.7
        self.q_source = rng.integers(0, len(SOURCE_NAMES), n)

    # ---------------------------------------------------------------- judgements: labels and products
    def _judgements(self):
        rng = _rng(self.seed, 4)
        q, F, n = self.q, N_FAMILIES, self.n_queries
        t, kind, cons = q["typ"].astype(np.int64), q["kind"].astype(np.int64), q["cons"]
        sib, acc, tA = t + 1 - 2 * kind, t - kind + 2, t - kind
        loc0 = q["loc"].astype(np.int64) * 3 * F
        fam_lo, fam_hi = self.t_lo[tA], self.t_hi[acc]
        loc_lo, loc_hi = self.t_lo[loc0], self.t_hi[loc0 + 3 * F - 1]
        tlo, thi = self.t_lo[t], self.t_hi[t]
        k1 = t * self.n_brands + q["brand"]
        k2 = t * self.n_colors + q["color"]
        # the products of the queried type that match the named attribute: a block of order 1 (brand) or 2 (color)
        m_lo = np.select([cons == 1, cons == 2], [np.searchsorted(self.key1, k1, "left"),
                                                   np.searchsorted(self.key2, k2, "left")], tlo)
        m_hi = np.select([cons == 1, cons == 2], [np.searchsorted(self.key1, k1, "right"),
                                                   np.searchsorted(self.key2, k2, "right")], thi)
        lo = np.zeros((n, 4, 3), np.int64)
        ln = np.zeros((n, 4, 3), np.int64)
        lo[:, 0, 0], ln[:, 0, 0] = m_lo, m_hi - m_lo                          # E
        lo[:, 1, 0], ln[:, 1, 0] = self.t_lo[sib], self.t_hi[sib] - self.t_lo[sib]  # S: sibling type,
        named = cons > 0                                                      # and the type's other brands/colors
        lo[:, 1, 1], ln[:, 1, 1] = tlo, np.where(named, m_lo - tlo, 0)
        lo[:, 1, 2], ln[:, 1, 2] = m_hi, np.where(named, thi - m_hi, 0)
        lo[:, 2, 0], ln[:, 2, 0] = self.t_lo[acc], self.t_hi[acc] - self.t_lo[acc]  # C
        lo[:, 3, 0], ln[:, 3, 0] = loc_lo, fam_lo - loc_lo                    # I: the locale's other families
        lo[:, 3, 1], ln[:, 3, 1] = fam_hi, loc_hi - fam_hi
        total = ln.sum(2)
        n_e = np.minimum(rng.integers(4, 26, n), total[:, 0])
        k = np.stack([n_e, rng.poisson(0.34 * n_e), rng.poisson(0.04 * n_e),
                      np.maximum(1, rng.poisson(0.13 * n_e))], 1)
        k = np.minimum(k, total)
        for col in (1, 3):  # at least 5 judgements per query
            k[:, col] = np.minimum(total[:, col], k[:, col] + np.maximum(0, 5 - k.sum(1)))
        # each pool (label, constraint, type, named attribute) is walked by one cursor with a stride coprime to its
        # size: a query's draws are distinct, and the pool's products are judged about equally often
        attr = np.select([cons == 1, cons == 2], [q["brand"], q["color"]], 0).astype(np.int64)
        t_ref = np.stack([t, t, acc, tA], 1)
        a = max(self.n_brands, self.n_colors) + 1
        key = ((np.arange(4)[None, :] * 3 + cons[:, None]) * self.n_types + t_ref) * a + \
            np.where(np.arange(4)[None, :] < 2, attr[:, None], 0)
        g = np.flatnonzero(k.ravel() > 0)
        kg = k.ravel()[g]
        pools, pool = np.unique(key.ravel()[g], return_inverse=True)
        order = np.argsort(pool, kind="stable")
        g, kg, pool = g[order], kg[order], pool[order]
        excl = np.cumsum(kg) - kg
        first = np.r_[0, np.flatnonzero(np.diff(pool)) + 1]
        prefix = excl - excl[first[pool]]  # draws of earlier queries from the same pool
        size = total.ravel()[g]
        pool_size = np.zeros(len(pools), np.int64)
        pool_size[pool] = size
        start = rng.integers(0, pool_size)
        step = _coprime(pool_size, (pool_size * 0.6180339887).astype(np.int64) + 1)
        rows, j = _expand_rows(kg)
        jg, jpool = g[rows], pool[rows]
        v = (start[jpool] + (prefix[rows] + j) * step[jpool]) % size[rows]
        glo, gln = lo.reshape(-1, 3)[jg], ln.reshape(-1, 3)[jg]
        pos = np.where(v < gln[:, 0], glo[:, 0] + v,
                       np.where(v < gln[:, 0] + gln[:, 1], glo[:, 1] + v - gln[:, 0],
                                glo[:, 2] + v - gln[:, 0] - gln[:, 1]))
        del glo, gln, v
        jq = jg // 4
        prod = np.where(cons[jq] == 2, self.perm[2][pos], self.perm[1][pos])
        label = (jg % 4).astype(np.int8)
        order = np.lexsort((rng.random(len(jq)), jq))
        self.ex_q, self.ex_label = jq[order].astype(np.int32), label[order]
        # keep the judged products only, in the catalog's order
        judged = np.zeros(len(self.typ), bool)
        judged[prod] = True
        self.p_index = np.flatnonzero(judged)
        new_index = np.cumsum(judged) - 1
        self.ex_prod = new_index[prod[order]].astype(np.int32)
        self._product_ids()
        # a recorded share of training labels flipped to another label, so confident learning can be scored
        train_rows = np.flatnonzero(self.q_train[self.ex_q])
        self.flip = np.sort(rng.choice(train_rows, int(round(self.noise * len(train_rows))), replace=False))
        self.true_label = self.ex_label[self.flip].copy()
        self.ex_label[self.flip] = (self.true_label + rng.integers(1, 4, len(self.flip))) % 4

    def _product_ids(self):
        """Distinct ids B0 + 8 base-36 characters; some es products reuse a us product's id."""
        rng = _rng(self.seed, 5)
        n = len(self.p_index)
        ids = np.zeros(0, np.int64)
        while len(ids) < n:
            draw = np.concatenate([ids, rng.integers(0, 36 ** 8, n - len(ids) + 16)])
            _, first = np.unique(draw, return_index=True)
            ids = draw[np.sort(first)]
        ids = ids[:n]
        loc = self.loc[self.p_index]
        us, es = np.flatnonzero(loc == 0), np.flatnonzero(loc == 1)
        n_reuse = min(int(round(ES_REUSED_ID_SHARE * len(es))), len(us))
        ids[rng.choice(es, n_reuse, replace=False)] = ids[rng.choice(us, n_reuse, replace=False)]
        self.p_id = ids

    # ---------------------------------------------------------------- rendering
    def _id_strings(self, ids: np.ndarray) -> pa.Array:
        alphabet = np.frombuffer(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ", np.uint8)
        digits = (ids[:, None] // (36 ** np.arange(7, -1, -1, dtype=np.int64))) % 36
        chars = np.empty((len(ids), 10), np.uint8)
        chars[:, 0], chars[:, 1] = ord("B"), ord("0")
        chars[:, 2:] = alphabet[digits]
        offsets = np.arange(0, 10 * len(ids) + 1, 10, dtype=np.int32)
        return pa.StringArray.from_buffers(len(ids), pa.py_buffer(offsets), pa.py_buffer(chars.tobytes()))

    def _product_table(self, chunk: int) -> pa.Table:
        rng = _rng(self.seed, 6, chunk)
        idx = self.p_index[chunk * PRODUCT_CHUNK:(chunk + 1) * PRODUCT_CHUNK]
        n, t = len(idx), self.text
        loc = self.loc[idx].astype(np.int64)
        typ, brand, color = self.typ[idx], self.brand[idx], self.color[idx]
        slots = np.zeros((len(SLOTS), n), np.int32)
        slots[0], slots[1], slots[2] = self.brand_vid[brand], self.type_vid[typ], self.color_vid[color]
        slots[3] = self.adj_vid[loc * self.n_adj + rng.integers(0, self.n_adj, n)]
        slots[4] = self.mpre_vid[rng.integers(0, len(self.mpre_vid), n)]
        slots[5] = self.mnum_vid[rng.integers(0, len(self.mnum_vid), n)]
        slots[6] = self.num_vid[rng.integers(0, len(self.num_vid), n)]
        rows = np.arange(n, dtype=np.int64)
        zero = np.zeros(n, np.int32)

        # title: head, extras (distinct phrases), tail with the color
        fmt = rng.choice(len(TITLE_FORMAT_WEIGHTS), n, p=TITLE_FORMAT_WEIGHTS)
        xr, xj = _expand_rows(_count(rng, n, 6.2, 0.5, 0, 12))
        xt = _distinct_ids(rng, xr, xj, self.extras[0][loc], self.extras[1][loc])
        u_row = np.concatenate([rows, xr, rows])
        u_tmpl = np.concatenate([self.head[loc, fmt], xt, self.tail[loc, fmt]])
        u_pre = np.concatenate([zero, self.sep[loc, fmt][xr], zero])
        order = np.argsort(u_row, kind="stable")
        title = t.render(n, u_row[order], u_pre[order], u_tmpl[order], np.zeros(len(order), np.int32), slots)

        # bullets: 1-8 bullets of 1-4 sentences (distinct within a product), an optional header each, joined by \n
        no_bullets = rng.random(n) < MISSING["bullets"]
        n_b = np.where(no_bullets, 0, rng.choice(np.arange(1, 9), n, p=[.04, .06, .12, .2, .3, .14, .08, .06]))
        br, bj = _expand_rows(n_b)
        n_s = np.minimum(1 + rng.poisson(1.45, len(br)), 5)
        sb, sj = _expand_rows(n_s)
        s_row = br[sb]
        _, s_rank = _expand_rows(np.bincount(s_row, minlength=n))
        s_tmpl = _distinct_ids(rng, s_row, s_rank, self.sentences[0][loc], self.sentences[1][loc])
        headed = rng.random(n) < 0.65
        header = self.bullet_header[loc[br], rng.integers(0, self.bullet_header.shape[1], len(br))]
        s_pre = np.where((sj == 0) & headed[s_row], header[sb], _Text.EMPTY)
        last_sent = sj == n_s[sb] - 1
        last_bullet = bj[sb] == n_b[s_row] - 1
        s_suf = np.where(~last_sent, self.markup[" "], np.where(last_bullet, _Text.EMPTY, self.markup["\n"]))
        bullets = _with_nulls(t.render(n, s_row, s_pre, s_tmpl, s_suf, slots), no_bullets)

        # description: lognormal number of sentences in paragraphs; plain text or HTML (p, br, lists, bold)
        no_desc = rng.random(n) < MISSING["description"]
        n_d = np.where(no_desc, 0, _count(rng, n, 11.5, 0.6, 1, 40))
        style = rng.choice(4, n, p=[0.55, 0.22, 0.13, 0.10])
        d_row, dj = _expand_rows(n_d)
        st = style[d_row]
        html_lo = np.where(style > 0, self.sentences_html[0][loc], self.sentences[0][loc])
        d_tmpl = _distinct_ids(rng, d_row, dj, html_lo, self.sentences[1][loc])
        last = dj == n_d[d_row] - 1
        para = (dj == 0) | (rng.random(len(d_row)) < 0.25)
        para_end = last | np.r_[para[1:], True]
        hdr = rng.random(len(d_row)) < 0.3
        h = rng.integers(0, self.p_header.shape[1], len(d_row))
        ld, mk = loc[d_row], self.markup
        d_pre = np.select(
            [(st == 1) & para & hdr, (st == 1) & para, (st == 2) & para & hdr, (st == 3) & (dj == 0), st == 3],
            [self.p_header[ld, h], mk["<p>"], self.br_header[ld, h], mk["<ul><li>"], mk["<li>"]], _Text.EMPTY)
        d_suf = np.select(
            [(st == 1) & para_end, (st == 3) & last, st == 3, last, (st == 2) & para_end],
            [mk["</p>"], mk["</li></ul>"], mk["</li>"], _Text.EMPTY,
             np.where(hdr, mk["<br>"], mk["<br><br>"])], mk[" "])
        desc = _with_nulls(t.render(n, d_row, d_pre, d_tmpl, d_suf, slots), no_desc)

        no_brand = rng.random(n) < MISSING["brand"]
        no_color = rng.random(n) < MISSING["color"]
        return pa.Table.from_arrays([
            self._id_strings(self.p_id[chunk * PRODUCT_CHUNK:(chunk + 1) * PRODUCT_CHUNK]), title, desc, bullets,
            _with_nulls(self.brand_names.take(pa.array(brand)), no_brand),
            _with_nulls(self.color_names.take(pa.array(color)), no_color),
            pa.array(LOCALES, pa.string()).take(pa.array(loc))], schema=PRODUCT_SCHEMA)

    def product_tables(self):
        for chunk in range(-(-len(self.p_index) // PRODUCT_CHUNK)):
            yield self._product_table(chunk)

    def example_tables(self):
        loc_names = pa.array(LOCALES, pa.string())
        labels, splits = pa.array(LABEL_CODES, pa.string()), pa.array(["test", "train"], pa.string())
        for lo in range(0, len(self.ex_q), EXAMPLE_CHUNK):
            jq = self.ex_q[lo:lo + EXAMPLE_CHUNK]
            n = len(jq)
            yield pa.Table.from_arrays([
                pa.array(np.arange(lo, lo + n, dtype=np.int64)), self.q_text.take(pa.array(jq)),
                pa.array(jq.astype(np.int64)), self._id_strings(self.p_id[self.ex_prod[lo:lo + n]]),
                loc_names.take(pa.array(self.q["loc"][jq])),
                labels.take(pa.array(self.ex_label[lo:lo + n])), pa.array(self.q_small[jq]),
                pa.array(np.ones(n, np.int64)), splits.take(pa.array(self.q_train[jq].astype(np.int8)))],
                schema=EXAMPLE_SCHEMA)

    def sources(self) -> pd.DataFrame:
        return pd.DataFrame({"query_id": np.arange(self.n_queries, dtype=np.int64),
                             "source": np.array(SOURCE_NAMES)[self.q_source]})

    def noise_frame(self) -> pd.DataFrame:
        codes = np.array(LABEL_CODES)
        return pd.DataFrame({"example_id": self.flip.astype(np.int64), "true_label": codes[self.true_label],
                             "given_label": codes[self.ex_label[self.flip]]})

    def summary(self) -> dict:
        share = np.bincount(self.ex_label, minlength=4) / len(self.ex_label)
        return dict(examples=len(self.ex_q), products=len(self.p_index), queries=self.n_queries,
                    flipped=len(self.flip), labels={c: round(float(s), 3) for c, s in zip(LABEL_CODES, share)})


def _write_parquet(tables, path: Path, schema: pa.Schema, dictionary: list[str]) -> None:
    with atomic_path(path) as tmp:
        with pq.ParquetWriter(tmp, schema, compression="snappy", use_dictionary=dictionary) as writer:
            for table in tables:
                writer.write_table(table, row_group_size=len(table))


def generate(n_queries: int = 300, seed: int = 0, noise: float = 0.05) -> tuple[pd.DataFrame, ...]:
    """(examples, products, sources, noise) frames in memory, exactly what write_sample writes (small sizes)."""
    s = _Sample(n_queries, seed, noise)
    ex = pa.concat_tables(list(s.example_tables())).to_pandas()
    products = pa.concat_tables(list(s.product_tables())).to_pandas()
    return ex, products, s.sources(), s.noise_frame()


def write_sample(data_dir: str | Path, n_queries: int = 300, seed: int = 0, noise: float = 0.05) -> dict:
    """Write the files into data_dir, products first, each atomically; returns the counts and label shares."""
    data_dir = Path(data_dir)
    s = _Sample(n_queries, seed, noise)
    _write_parquet(s.product_tables(), data_dir / PRODUCTS, PRODUCT_SCHEMA,
                   ["product_brand", "product_color", "product_locale"])
    for frame, name in ((s.sources(), SOURCES), (s.noise_frame(), NOISE_FILE)):
        with atomic_path(data_dir / name) as tmp:
            frame.to_csv(tmp, index=False)
    _write_parquet(s.example_tables(), data_dir / EXAMPLES, EXAMPLE_SCHEMA,
                   ["query", "product_locale", "esci_label", "split"])
    return s.summary()


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(prog="python -m esci.sample", description=__doc__.split("\n")[0])
    ap.add_argument("--queries", type=int, default=300, help="number of queries (300: the embedded sample; "
                                                              "130000: about the public release's size)")
    ap.add_argument("--out", required=True, help="folder to write the files into")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--noise", type=float, default=0.05, help="share of training labels flipped and recorded")
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    info = write_sample(args.out, args.queries, args.seed, args.noise)
    labels = " ".join(f"{k} {v:.3f}" for k, v in info["labels"].items())
    print(f"wrote {args.out}: {info['queries']} queries, {info['examples']} examples, {info['products']} products, "
          f"{info['flipped']} flipped labels, labels {labels}, {time.perf_counter() - t0:.1f} s", flush=True)
    return info


if __name__ == "__main__":
    main()
