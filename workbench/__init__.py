"""The editors' workbench: knowledge articles edited in the browser (/workbench), every save a content version in
SQL, the article files (data/kb) written back; "try a question" with the bot's own decision."""
