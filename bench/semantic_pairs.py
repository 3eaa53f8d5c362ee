"""The semantic cache's labelled set: 30 topics, each a question, a paraphrase of it and a
near-miss (same topic, a different question whose answer differs).

A paraphrase should be answered from its question's entry; a near-miss must never be
answered from any entry. Written for this benchmark; ``bench/semantic_cache.py`` uses it.
"""

from __future__ import annotations

__all__ = ["TOPICS"]

# (question, paraphrase that should hit, near-miss that must not)
TOPICS: list[tuple[str, str, str]] = [
    (
        "What is the capital of France?",
        "Which city is the capital of France?",
        "What is the population of France?",
    ),
    (
        "How do I reverse a list in Python?",
        "What's the way to reverse a Python list?",
        "How do I sort a list in Python?",
    ),
    (
        "How many days are there in a leap year?",
        "A leap year has how many days?",
        "When is the next leap year?",
    ),
    (
        "What is the boiling point of water at sea level?",
        "At sea level, at what temperature does water boil?",
        "What is the freezing point of water at sea level?",
    ),
    (
        "Who wrote the novel Pride and Prejudice?",
        "Who is the author of Pride and Prejudice?",
        "When was Pride and Prejudice first published?",
    ),
    (
        "How do I convert a string to an integer in JavaScript?",
        "In JavaScript, how can I turn a string into an integer?",
        "How do I convert an integer to a string in JavaScript?",
    ),
    (
        "What is the speed of light in a vacuum?",
        "How fast does light travel in a vacuum?",
        "What is the speed of sound in air?",
    ),
    (
        "How can I reset my router to factory settings?",
        "What are the steps to factory reset my router?",
        "How can I change my router's Wi-Fi password?",
    ),
    (
        "What are the symptoms of the flu?",
        "What symptoms does influenza cause?",
        "How is the flu treated?",
    ),
    (
        "How long should I boil an egg for a soft yolk?",
        "For a runny yolk, how many minutes do I boil an egg?",
        "How long should I boil an egg for a hard yolk?",
    ),
    (
        "What is the largest planet in our solar system?",
        "Which planet in the solar system is the biggest?",
        "What is the smallest planet in our solar system?",
    ),
    (
        "How do I undo the last commit in git?",
        "What's the git command to revert my most recent commit?",
        "How do I see the history of commits in git?",
    ),
    (
        "What is the tallest mountain in the world?",
        "Which mountain is the highest on Earth?",
        "What is the deepest point in the ocean?",
    ),
    (
        "How many ounces are in a pound?",
        "A pound is equal to how many ounces?",
        "How many grams are in a pound?",
    ),
    (
        "What does HTTP status code 404 mean?",
        "What is the meaning of a 404 HTTP error?",
        "What does HTTP status code 500 mean?",
    ),
    (
        "How do I make a cup of green tea?",
        "What's the best way to brew green tea?",
        "How much caffeine is in green tea?",
    ),
    (
        "When did World War II end?",
        "In what year did the Second World War end?",
        "When did World War II begin?",
    ),
    (
        "How do I create a virtual environment in Python?",
        "What is the command to set up a Python virtualenv?",
        "How do I delete a virtual environment in Python?",
    ),
    (
        "What is the chemical symbol for gold?",
        "Which element symbol stands for gold?",
        "What is the atomic number of gold?",
    ),
    (
        "How can I improve my sleep quality?",
        "What can I do to sleep better at night?",
        "How many hours of sleep does an adult need?",
    ),
    (
        "What is the difference between TCP and UDP?",
        "How do TCP and UDP differ?",
        "Which port does HTTPS use by default?",
    ),
    (
        "How do I center a div horizontally in CSS?",
        "What's the CSS to horizontally center a div?",
        "How do I center a div vertically in CSS?",
    ),
    (
        "Who painted the Mona Lisa?",
        "Which artist painted the Mona Lisa?",
        "Where is the Mona Lisa displayed?",
    ),
    (
        "How many continents are there?",
        "What is the number of continents on Earth?",
        "Which continent is the largest?",
    ),
    (
        "What is the square root of 144?",
        "What number squared gives 144?",
        "What is the square root of 169?",
    ),
    (
        "How do I cancel my subscription?",
        "What are the steps to cancel my subscription?",
        "How do I upgrade my subscription?",
    ),
    (
        "What time zone is Tokyo in?",
        "Which time zone does Tokyo use?",
        "What currency is used in Tokyo?",
    ),
    (
        "How do I list all files in a directory in Linux?",
        "What's the Linux command to show every file in a folder?",
        "How do I delete all files in a directory in Linux?",
    ),
    (
        "What is photosynthesis?",
        "Can you explain what photosynthesis is?",
        "Where does photosynthesis take place in a plant cell?",
    ),
    (
        "How much water should I drink per day?",
        "What is the recommended daily water intake?",
        "How much protein should I eat per day?",
    ),
]
