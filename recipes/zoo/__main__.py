from recipes.zoo import main

main()
