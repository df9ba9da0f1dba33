from lkmetrics.cli import main

main()
