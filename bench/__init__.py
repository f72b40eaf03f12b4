"""Side-by-side benchmark of Dockyard against CNCF Distribution 2.8 (``bench/run``)."""
