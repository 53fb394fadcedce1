from recipes.cards.committed import main

if __name__ == "__main__":
    main()
