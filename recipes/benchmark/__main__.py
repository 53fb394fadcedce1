from recipes.benchmark import main

main()
