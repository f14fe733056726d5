from forgeai_ls.server.main import main

main()
