from .entry.launch import main

main()
