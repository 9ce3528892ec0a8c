"""`higgs-studio`: a local web app (gradio) over the same commands as the console tools. Every action it takes is a
command it shows, so a user can copy it to a cluster; it never re-implements what the tools do."""
