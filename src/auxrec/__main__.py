from auxrec.cli import main

main()
