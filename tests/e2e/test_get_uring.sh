#!/usr/bin/env bash
IO=uring
source "$(dirname "$0")/get_cases.sh"
