"""Controllers: behaviour. They connect the views' signals and actions to engine calls, which run
in workers (pixret_desktop.workers), and feed the results back into the models and views."""
