from studies.zoo import main

main()
