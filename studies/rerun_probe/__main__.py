from studies.rerun_probe.run import main

main()
