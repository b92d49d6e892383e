"""What a session shows: the HTML page (page) and its figures, the Markdown summary, night-to-night
drift, H1's 2x2 table (factorial), and the exports: results.csv and cases.csv (tables), TensorBoard's
files (tracker). Reads results.json; runs nothing.

    python -m harness.report reports/<timestamp>     rebuilds the page and the tables from results.json alone
"""
