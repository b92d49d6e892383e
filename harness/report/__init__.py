"""What a session shows: the HTML page (page) and its figures, the Markdown summary, night-to-night
drift, and H1's 2x2 table (factorial). Reads results.json; runs nothing.

    python -m harness.report reports/<timestamp>     rebuilds the page from results.json alone
"""
