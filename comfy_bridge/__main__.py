from comfy_bridge.cli import main

main()
