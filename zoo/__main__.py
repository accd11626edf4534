from zoo.front.cli import main

main()
