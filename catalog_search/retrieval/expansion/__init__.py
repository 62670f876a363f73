"""Query expansion: a query word no indexed text contains gets catalog words (words.py), from its color
(colors.py, color_names.py), WordNet (thesaurus.py) and the encoder's nearest catalog words (vocabulary.py)."""
